"""An example Tenon plugin package written against a contract this Tenon does not provide."""
