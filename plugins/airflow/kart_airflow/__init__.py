"""kart_airflow."""
