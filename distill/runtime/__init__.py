"""What teachers and students run on: devices and precision, the CPU's features and bf16 probe, compiling,
DeBERTa's fast attention, the sentence encoder, and model loading. Imports no teacher or student."""
