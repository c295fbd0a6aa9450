"""mlpipeline: a small demo pipeline (LoadData -> MakeFeatures -> Train -> Evaluate), pandas and numpy only.

Every scheduler example in kart (kart build, luigi, Airflow, Kedro) runs these same tasks.
"""

from mlpipeline.tasks import Evaluate, LoadData, MakeFeatures, Train

__all__ = ["Evaluate", "LoadData", "MakeFeatures", "Train"]
