"""Two task modules defining classes of the same name (a.SnModel, b.SnModel): gokart's layout gives them
the same unique id, output path (``make_target`` paths carry no module) and manifest file name."""
