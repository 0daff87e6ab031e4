"""The domain helpers' public names (aggregates, repositories, projections),
re-exported by tidelog.es."""
__all__: list[str] = []
