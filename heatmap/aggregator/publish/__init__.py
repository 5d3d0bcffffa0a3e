"""What leaves the store aggregator: the v1 aggregate topics for BI, Home Assistant discovery."""
