"""Running work in processes and on Dask clusters."""
