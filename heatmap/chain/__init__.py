"""The chain's centre: aggregates of every store, from the central MQTT broker into ClickHouse."""
