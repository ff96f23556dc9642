"""Students: train, load, export and shrink the small classifiers that learn from a teacher's labels."""
