"""Reading the user's files into memory: readers (one per format) -> Document -> chunks -> pipeline."""
