"""kart_kedro."""
