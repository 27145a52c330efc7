// Package rooms owns what a nest is on the server side: its record in Redis
// (shared with the Nests API server), its LiveKit room, the tokens that open
// it, who may restart it, and Engine, the recreate algorithm that ties them
// together.
//
// Adapters to Redis and LiveKit live here as concrete types (RedisStore,
// LiveKitRooms); Engine sees them through the small interfaces it declares,
// so that the algorithm reads as the product's rules and nothing else.
package rooms
