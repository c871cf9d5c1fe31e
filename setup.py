"""tfrec: the YouTube two-stage recommender (Covington et al., 2016) on TensorFlow Recommenders."""
import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r'__version__ = "([^"]+)"', Path("tfrec/__init__.py").read_text()).group(1)

# Exact pins that install together on Python 3.11. scann 1.4.2's TF ops are built against exactly
# tensorflow 2.20; TFRS 0.7.7 needs Keras 2, which tf-keras provides.
INSTALL_REQUIRES = [
    "tensorflow==2.20.0",
    "tf-keras==2.20.1",
    "tensorflow-recommenders==0.7.7",
    "scann==1.4.2",
    "tensorflow-datasets==4.9.10",
    "numpy==2.4.6",
    "pandas==3.1.1",
    # apache-beam 2.77 (the `beam` extra) requires pyarrow < 26: 25.0.1 is the newest release
    # both it and pandas 3.1 accept, so the one pin holds with and without the extra.
    "pyarrow==25.0.1",
    "pyyaml==6.0.4",
    "matplotlib==3.11.2",
    # TFDS 4.9.10 needs it to prepare datasets (download_and_prepare), but does not declare it.
    "importlib_resources==7.1.0",
    # Warmup records of the exports (PredictionLog protos); the pipeline exports by default.
    "tensorflow-serving-api==2.20.0",
    # Progress bars of training and long loops (off when output is not a terminal).
    "tqdm==4.70.1",
    # The pipeline config's typed schema and its validation (tfrec/config/).
    "pydantic==2.14.4",
]

setup(
    name="tfrec",
    version=VERSION,
    description=__doc__,
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["tfrec", "tfrec.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest==9.2.0", "mypy==2.4.1", "ruff==0.17.6", "types-PyYAML==6.0.12.20261122"],
        # tf.keras.utils.plot_model of the towers; also needs Graphviz (`apt-get install graphviz`).
        "plot": ["pydot==3.0.4"],
        # Example building on Apache Beam (examples.driver: beam; tfrec/features/beam_driver.py):
        # DirectRunner here, Dataflow / Flink / Spark on a cluster (README, "Scaling out").
        # google-crc32c: the C checksum Beam's TFRecord writer uses (else it refuses to write).
        "beam": ["apache-beam==2.77.0", "google-crc32c==1.9.0"],
    },
    entry_points={"console_scripts": ["tfrec=tfrec.cli:main"]},
)
