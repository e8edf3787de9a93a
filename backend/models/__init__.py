"""Model adapters (one module or package per family) behind one interface (``base``)."""
