"""Behaviours run as actors: plain classes with a `receive(request)` method.

Requests are frozen attrs classes and each behaviour dispatches on their type,
so any transport can carry them and a log can name them.
"""
