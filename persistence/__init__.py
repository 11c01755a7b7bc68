"""The one persistence layer that api/ and worker/ share: settings, models, sessions,
blob storage and the queries on datasets and jobs."""
