"""Getting reads off the unit: the durable outbox, the MQTT client (client) and its connection settings
(mqtt), and the remote commands it answers."""
