"""One cell's evaluation, the payload every executor runs: build the data and the global model
(``building``), simulate the victim's round (evalgrid.fl), run the attack's trials
(``trials``, checkpointed by ``checkpoint``), score them (evalgrid.metrics) and write the row
and its artifacts (``pipeline``, ``artifacts``)."""
