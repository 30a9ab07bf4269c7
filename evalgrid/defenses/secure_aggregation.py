"""Secure aggregation (Bonawitz et al., CCS 2017), as FedLeak evaluates it (Fig. 7): the server
only learns the aggregate of K clients' updates, never the victim's alone,

    ĝ = Σ_k (N_k / Σ_j N_j) · g_k   (the sample-weighted mean; N_k = N for every client here).

The masking cryptography is not simulated, only what it reveals. The cell pipeline
(:mod:`evalgrid.fl.client`) reads ``aggregated_clients``, draws K − 1 peers with their own
samples, runs each one's local training and per-client defenses, and averages; ``apply`` is the
identity, and the defense must come last in a composition (it describes what the server sees
after every client-side step). Default K = 2: the smallest aggregate.
"""

from __future__ import annotations

from evalgrid.defenses.base import ClientSide, Defense, with_gradients
from evalgrid.defenses.options import SecureAggregationOptions
from evalgrid.fl.threat_model import SharedUpdate


class SecureAggregation(Defense):
    """The server sees the mean of ``clients`` updates; the victim's own update is unchanged."""

    def __init__(self, options: SecureAggregationOptions):
        self.options = options
        self.aggregated_clients = options.clients

    def apply(self, update: SharedUpdate, client: ClientSide) -> SharedUpdate:
        return with_gradients(update, update.gradients)


def build(options: SecureAggregationOptions) -> SecureAggregation:
    return SecureAggregation(options)
