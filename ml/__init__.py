"""Creative Director MLOps: the plain library behind the pipeline (never imports Airflow)."""
