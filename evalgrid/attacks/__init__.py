"""Gradient inversion attacks. Each module implements one attack (its docstring cites the
equations and lists where it departs from the paper); ``entries.py`` declares them in the
catalogue, ``options.py`` holds their options. An attack's ``reconstruct(view: ServerView,
generator)`` sees only what the threat model grants; its images are in the model's
(normalised) input space."""
