"""Kedro settings. Nothing kart-specific is needed here:

- ``kart_kedro.TaskOnKartDataset`` is named in conf/base/catalog.yml,
- the node cache is a runner: ``kedro run --runner kart_kedro.KartRunner``,
- ``kedro kart list|clear`` comes from kart_kedro's ``kedro.project_commands`` entry point.
"""
