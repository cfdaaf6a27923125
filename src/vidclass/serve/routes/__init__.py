"""The HTTP routes, one module per resource: videos (classify, timeline), gallery
(search, similar), system (info, models)."""
