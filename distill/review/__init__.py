"""The review loop: a queue of texts for a person to label (`queue`), and their answers read back (`answers`)
for eval's estimates with intervals and for training."""
