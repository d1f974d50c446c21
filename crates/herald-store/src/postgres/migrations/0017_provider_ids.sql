-- Identity health (issue 13): status callbacks name a message by the provider's id for it (a
-- Twilio SID, an SMTP queue id); this finds it within its environment.
CREATE INDEX messages_by_provider_id ON messages (env, provider_id) WHERE provider_id IS NOT NULL;
