"""GGUF control vectors (llama.cpp's layout, also read by repeng and EasySteer): per-layer
float32 directions and metadata to and from a ``.gguf`` file."""
