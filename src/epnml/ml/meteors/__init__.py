"""Meteor light curves: features, unsupervised classes and double-station pairs."""
