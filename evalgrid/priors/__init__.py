"""The adversary's generative priors (GIA-L's and GGL's generator, ROG's autoencoder): networks
trained once per setup on auxiliary data disjoint from every victim, cached beside the stage
models, and handed to the attacks that optimise through them."""
