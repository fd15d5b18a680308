"""Blind listening tests: from the candidates of a clip to votes and ratings.

- :mod:`~restorelab.listening.candidates`: outputs that sound the same become one candidate.
- :mod:`~restorelab.listening.stimuli`: a fresh, matched, dithered excerpt pair per trial.
- :mod:`~restorelab.listening.transport`: single-use stimulus links and the rule that opens voting.
- :mod:`~restorelab.listening.trials`: sessions, balanced pairs, judging a vote.
- :mod:`~restorelab.listening.votes`: the vote log (one module owns its schema).
- :mod:`~restorelab.listening.ratings`: Bradley-Terry with bootstrap intervals, pair statistics.
"""
