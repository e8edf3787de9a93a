"""MVDream (ByteDance, OpenRAIL-M): text -> four consistent views, our diffusers-style build."""
