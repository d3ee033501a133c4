"""tjf_cli: the ``toolforge-jobs`` command line client, a thin click adapter over the API SDK."""
