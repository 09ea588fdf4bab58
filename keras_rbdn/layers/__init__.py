from keras_rbdn.layers.pooling import MaxPoolingWithArgmax2D
from keras_rbdn.layers.pooling import MaxUnpooling2D
from keras_rbdn.layers.resampling import BilinearUpsampling2D
