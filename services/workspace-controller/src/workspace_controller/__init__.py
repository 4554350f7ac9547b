"""The Kaito workspace controller and its validating admission webhook."""
