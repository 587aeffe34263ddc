"""Call recordings: storage layout, registration, retention, transcription (vosk) and replay.

``transcribe``, ``audio`` and ``masking`` are the pure core (no database, no network);
``service`` and ``worker`` hold the state in the database; ``api`` serves the replay.
"""
