"""slumwatch: map informal settlements from sub-meter imagery and monitor their growth.

Subpackages (each a top-level folder of the repository):

- :mod:`slumwatch.catalogs` - STAC search, Zarr cubes, labels, tiling, the synthetic city
- :mod:`slumwatch.models` - networks, SSL methods, the building stage (pure torch)
- :mod:`slumwatch.actors` - Ray actors: training and tiled inference
- :mod:`slumwatch.pipelines` - Prefect flows that orchestrate the above
- :mod:`slumwatch.dashboards` - reports and dashboards, built from outputs only
- :mod:`slumwatch.deploy` - cluster and deployment configs
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slumwatch")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
