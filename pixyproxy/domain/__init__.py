"""The domain: models, errors and use cases. No web, SQL, S3 or OpenAI library is imported here."""
