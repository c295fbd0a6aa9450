"""kart_kedro_demo: a Kedro project using kart (catalog datasets, a kart pipeline, cached Kedro nodes)."""

__version__ = "0.1.0"
