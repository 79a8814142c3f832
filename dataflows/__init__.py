"""daybreak's Hamilton dataflows: every asset is a function named after what it produces."""
