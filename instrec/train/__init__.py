"""Training: the LightningModule, configs, clip datasets, augmentation and run directories."""
