"""The domains of the service, one module each: models, and later their job kinds."""
