"""The bundled province portal service (Cổng tiếp nhận học bạ số), for development and tests."""
