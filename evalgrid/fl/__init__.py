"""Federated learning as the victim and the server run it: the client's local training
(:mod:`.local_training`), the cell's client pipeline (:mod:`.client`), FedAvg training of the
global model (:mod:`.fedavg`) and the training stage a cell attacks, cached per setup
(:mod:`.stage`). The catalogue's entries for stages and local trainings are in :mod:`.entries`,
their options in :mod:`.options`; those two and this package import no torch."""
