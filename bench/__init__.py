"""The board benchmark (`make bench`): seed, serve, load, print. See bench/run.py."""
