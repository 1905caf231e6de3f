/* Live snapshots over Socket.IO. A page says which cameras it shows (watch); the server puts
   it in those cameras' rooms, so it receives their pushes and no one else's. */

export function connectLive(onMood) {
  const state = document.getElementById("live-state");
  state.hidden = false;
  let watched = [];
  let socket = null;
  const live = {
    watch(cameras) {
      const wanted = [...cameras].sort();
      if (wanted.join("\n") === watched.join("\n")) return;  // the overview asks every refresh
      watched = wanted;
      if (socket && socket.connected) socket.emit("watch", { cameras: watched });
    },
  };
  if (!window.io) {
    state.textContent = "no live client"; state.className = "live off";
    return live;
  }
  socket = window.io({ withCredentials: true });
  socket.on("connect", () => {
    state.textContent = "live"; state.className = "live on";
    socket.emit("watch", { cameras: watched });  // rooms are per connection: join again
  });
  socket.on("disconnect", () => { state.textContent = "offline"; state.className = "live off"; });
  socket.on("connect_error", (error) => {
    state.textContent = "offline"; state.className = "live off";
    if (error && /unauthori[sz]ed/i.test(error.message || "")) window.location.href = "/login";
  });
  socket.on("mood", (mood) => {
    if (mood && typeof mood === "object") onMood(mood);
  });
  return live;
}
