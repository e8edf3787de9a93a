"""The models that ship with Dream CAD and need no weights: ``procedural`` (text of shape words
-> SDF -> mesh) and ``inflate`` (image silhouette -> puffy textured body)."""
