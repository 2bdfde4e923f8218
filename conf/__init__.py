"""The Hydra configs. A package only so that Hydra finds them inside an installed tool, as
``supernet.conf`` (``supernet/conf`` links here; the wheel holds a copy)."""
