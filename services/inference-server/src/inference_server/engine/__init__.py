"""Generation engines behind one narrow interface (see `protocol.py`)."""
