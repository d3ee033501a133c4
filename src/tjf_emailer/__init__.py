"""tjf_emailer: the daemon that watches job pods and emails tool maintainers about them."""
