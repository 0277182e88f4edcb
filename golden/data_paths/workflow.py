"""The guide's "Complex Data Path Mapping": dotted paths into a nested output."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("data_paths")

builder.add_async_code("data_fetcher", """
result = {
    "user_data": {"id": 123, "profile": {"name": "Alice", "role": "admin"}},
    "permissions": {"read": True, "write": True, "admin": False},
    "session": {"token": "abc123", "expires": 3600}
}
""")

builder.add_async_code("processor", """
granted = sorted(name for name, allowed in user_permissions.items() if allowed)
result = {
    "greeting": f"Hello {user_profile['name']} ({user_profile['role']})",
    "granted": granted,
    "token_length": len(auth_token),
}
""")

# Map nested data paths to different target inputs
builder.add_connection("data_fetcher", "result.user_data.profile", "processor", "user_profile")
builder.add_connection("data_fetcher", "result.permissions", "processor", "user_permissions")
builder.add_connection("data_fetcher", "result.session.token", "processor", "auth_token")

workflow = builder.build()
