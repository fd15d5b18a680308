"""Our spectral U-Net, in one place: the model and its signal path (:mod:`.model`), the training
losses (:mod:`.losses`), the training loop and its pairs (:mod:`.train`), and the clean training
music (:mod:`.corpus`, ``restorelab data build``).

The restorers that run the shipped checkpoints live with the other restorers
(``restorers/spectral_unet.py``). Importing this package imports nothing heavy; the modules
import torch where they need it.
"""
