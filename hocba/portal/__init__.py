"""The client side of the Sở portal interface: packaging and transactions."""
