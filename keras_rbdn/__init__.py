"""keras-rbdn: the Recursively Branched Deconvolutional Network for Keras 3.

RBDN (Santhanam, Morariu & Davis, "Generalized Deep Image to Image
Regression", CVPR 2017) for image denoising, face relighting and
colorization, on the TensorFlow, JAX and PyTorch backends.
"""

# First: for the command line, imports Keras without TensorFlow's start-up
# lines on stderr (see the module).
from keras_rbdn import _quiet_start  # noqa: F401
from keras_rbdn import data
from keras_rbdn import evaluation
from keras_rbdn import inference
from keras_rbdn import layers
from keras_rbdn import losses
from keras_rbdn import metrics
from keras_rbdn import presets
from keras_rbdn import training
from keras_rbdn import weights_files
from keras_rbdn.export import export
from keras_rbdn.models import PAPER_ALIASES
from keras_rbdn.models import RBDN
from keras_rbdn.models import TASKS
from keras_rbdn.models import TaskSpec
from keras_rbdn.models import build
from keras_rbdn.models import fold_batch_norm
from keras_rbdn.models import get_task
from keras_rbdn.models import image_model
from keras_rbdn.presets import load

__version__ = "0.1.0"
