"""The text front end: symbol tables, cleaners and numbers as words, phonemes, text to ids."""
