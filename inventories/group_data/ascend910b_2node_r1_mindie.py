model_id = "deepseek-ai/DeepSeek-R1"
model_served_name = "DeepSeek-R1"
model_format = "w8a8"
model_max_len = 32768

engine_kind = "mindie"

accelerator_kind = "ascend-910b-64g"
accelerator_count = 8

network_socket_ifname = "enp189s0f0"

npu_netmask = "255.255.255.0"
npu_gateway = "10.197.91.254"
npu_tls = False

hub_kind = "modelscope"
# A 0600 file holding the API key; without one, a deploy generates it (serving_api_key_dir).
# serving_api_key_file = "/etc/ironserve/api-key"
