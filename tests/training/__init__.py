"""Tests of the training layer (torch, Lightning)."""
