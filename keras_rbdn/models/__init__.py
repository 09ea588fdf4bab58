from keras_rbdn.models.build import PAPER_ALIASES
from keras_rbdn.models.build import build
from keras_rbdn.models.folding import fold_batch_norm
from keras_rbdn.models.image_model import image_model
from keras_rbdn.models.rbdn import RBDN
from keras_rbdn.models.tasks import TASKS
from keras_rbdn.models.tasks import TaskSpec
from keras_rbdn.models.tasks import get_task
