"""The Hugging Face Hub: a student as a model repo folder with its model card, and the upload."""
